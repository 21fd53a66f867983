"""Learning: a network with its learning rule (``tasks``, ``losses``), the
generic trainer and its callbacks, evaluation, optimisers, pre-training, and
the run directory a training writes (``runs``)."""
