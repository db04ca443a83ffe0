"""Measurement: peak memory (``memory``), step timing (``timing``) and the phase marker the
learners call (``phases``), and THE device resolver (``device``)."""
