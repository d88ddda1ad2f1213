"""What the reference builds share with the service: the job hash's key and lifetime."""

# The service's default KEY_PREFIX and RESULT_TTL_S, so that every build writes the same keys.
JOB_KEY_PREFIX = "pred:job:"
JOB_TTL_S = 86_400


def job_key(prediction_id: str) -> str:
    return f"{JOB_KEY_PREFIX}{prediction_id}"
