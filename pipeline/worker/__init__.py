"""The Faust worker runtime: the stage loop, the HTTP door, tables, durable
timers, shared state, the warehouse sink. Knows no stage; agents build on it.
"""
