"""The simulator: a physically consistent data hall served over real SNMP and Modbus on loopback.

The physics (`model`) is a pure function of (seed, time, control actions); `world` keeps the
state that changes (controls, energy counters), `wire` turns canonical values into each
profile's wire format, `agents` serve it, `control` is the HTTP API that reads the truth.
"""
