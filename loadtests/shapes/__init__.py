"""Load shapes, one per file, so that a run picks one with a second locustfile:
`-f loadtests/locustfile.py,loadtests/shapes/step.py`."""
