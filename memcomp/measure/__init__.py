"""Measuring a cell: memory, time, and the device they are measured on."""
