"""Report: the attribution models (pure maths over touches and deals)."""
