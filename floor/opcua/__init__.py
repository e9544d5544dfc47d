"""The OPC UA server of a line (asyncua): OPC 40100-shaped address space, users and roles."""
