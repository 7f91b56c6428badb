"""Thin adapters to the outside world: GitHub, MLflow, Kustomize, the database."""
