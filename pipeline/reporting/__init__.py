"""The read side: reports, the dashboard, a lead's timeline, warehouse rows of events."""
