"""The model protocol (base.py) and the models MODEL names: the mock and a scikit-learn
classifier of iris flowers."""
