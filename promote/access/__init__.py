"""Who may touch what: IAM policies, MLflow grants, and apply's pre-flight check."""
