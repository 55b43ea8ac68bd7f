"""The whole stack at rest after `make run`: CPU, memory and database transactions."""
