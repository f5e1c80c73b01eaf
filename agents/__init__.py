"""One thin Faust adapter per lifecycle stage: consume → domain function → emit."""
