"""What a served API's /metrics reports, read as Prometheus would."""

import httpx2 as httpx
from prometheus_client.parser import text_string_to_metric_families


def scraped_total(url: str, name: str, labels: dict[str, str]) -> float:
    """The sum of the samples of `name` whose labels include `labels`, in one scrape of the
    worker that answers."""
    text = httpx.get(f"{url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and sample.labels.items() >= labels.items()
    )
