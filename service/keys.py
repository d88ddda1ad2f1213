"""Every Redis key the service reads or writes is named here, and nowhere else."""

from uuid import UUID


class Keys:
    """Key names under one prefix, so that several deployments can share a Redis."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def job(self, prediction_id: UUID) -> str:
        # The id is a parsed UUID, so a hostile path can never shape a key.
        return f"{self.prefix}job:{prediction_id}"
