"""Talking to the line: what the factory's machines and systems need from twinspect, in their own protocols.

- ``floor.opcua``: an OPC UA server modelled on OPC 40100 (Machine Vision): state machine, recipe,
  counters, the last result, a ``ResultReady`` event per verdict, methods.
- ``floor.gate``: each board's OK / NG decision for a reject gate downstream, with its deadline and
  the fail-safe rule; outputs to OPC UA, Modbus TCP and a webhook, each with a heartbeat.
- ``floor.sparkplug``: a Sparkplug B edge node on MQTT (births, deaths, data, rebirth on command).
- ``floor.spc``: p- and u-charts with the Western Electric rules; ``process.drift`` into the event log.
- ``floor.belt``: the line model (belt speed, spacing); what it did not expect becomes ``twin.drift``.

Every output subscribes to what the engine and the event log already produce and never blocks
them: bounded queues (``floor.outlet``), counted drops, fail-safe defaults. ``floor.service``
builds what the settings enable; ``api`` wires it (layer above, see ARCHITECTURE.md).
"""
