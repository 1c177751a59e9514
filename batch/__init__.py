"""Batch recognition on Ray Data: many photos, one machine or a cluster, results in Parquet.

Needs the ``[ray]`` extra; importing this package does not import Ray.

    import ray
    from emotion_edge.batch import find_inputs, recognize_dataset
    from emotion_edge.runtime import RecognizerOptions

    ray.init(num_cpus=2)
    dataset = recognize_dataset(find_inputs(["photos/"]), RecognizerOptions(), workers=2)
    table = dataset.to_pandas()      # one row per face, or per file without one
"""

from .cluster import start_ray, stop_ray
from .inputs import find_inputs
from .job import BatchSummary, run_batch
from .pipeline import RecognizeFaces, recognize_dataset, result_schema

__all__ = ["BatchSummary", "RecognizeFaces", "find_inputs", "recognize_dataset",
           "result_schema", "run_batch", "start_ray", "stop_ray"]
