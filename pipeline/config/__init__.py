"""Configuration: settings (environment), the topic registry (topics.yaml), rule
files (YAML, validated into frozen models), keys, logging and the AsyncAPI export.
"""
