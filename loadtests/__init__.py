"""Locust load tests of the prediction service: scenarios, shapes, open loop and thresholds."""
