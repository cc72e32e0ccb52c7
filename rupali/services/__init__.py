"""Services: plain functions that take a database session and do one kind of work."""
