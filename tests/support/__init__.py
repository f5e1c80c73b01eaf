"""Helpers the test tiers share: builders, fixed scenarios, rules, a tenant of its own
on the broker. Test modules and conftest.py files import from here, never from each
other, so a test module is only ever collected, never imported."""
