"""Event models of the lead pipeline: the contracts on every Kafka topic.

Inputs from outside (inquiries, activities, CRM outcomes) have lean contracts a
channel or CRM can fill without knowing the pipeline; every event the pipeline
emits carries the common envelope (`schemas.envelope`).
"""
