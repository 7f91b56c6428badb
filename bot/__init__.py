"""gitops-bot: promote MLflow models through Kustomize overlays by pull request."""
