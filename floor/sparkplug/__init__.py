"""Sparkplug B on MQTT: the generated payload module (Eclipse Tahu, EPL-2.0) and twinspect's edge node."""
