"""Event Hubs in the devhost: a durable partitioned log, its trigger and its output binding."""
