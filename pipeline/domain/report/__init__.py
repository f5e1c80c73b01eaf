"""Report: the attribution models, rule-based and data-driven (pure maths over
touches, journeys and deals)."""
