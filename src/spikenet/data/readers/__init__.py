"""Dataset readers, one module per format; each registers itself in ``READERS`` beside its code.

``READERS.register(name, files=..., optional=..., missing=..., check_cached=...)`` makes a reader available
as ``dataset.name=<name>`` (or ``dataset.reader=<name>``). A reader takes the ``dataset`` config node and
returns a ``TemporalGraph`` (features empty unless the format carries its own). The metadata, all optional:

- ``files(cfg)``: the source files, relative to the dataset folder (enables the graph cache and the
  missing-file message);
- ``optional(cfg)``: files that may be present (named in that message);
- ``missing(cfg, folder)``: raises the reader's own missing-file message (default ``parsing.require_files``);
- ``check_cached(graph, cfg)``: whether a cached graph is still what the reader would build (decisions that
  depend on the machine, e.g. automatic time bins).
"""

from spikenet.registry import Registry

READERS: Registry = Registry("dataset reader", "dataset.name")

# importing the modules registers their readers (registration order: the order of the choices in errors)
from spikenet.data.readers import edgelist as edgelist  # noqa: E402
from spikenet.data.readers import reference as reference  # noqa: E402
from spikenet.data.readers import static as static  # noqa: E402
from spikenet.data.readers import synthetic as synthetic  # noqa: E402
from spikenet.data.readers import tgb as tgb  # noqa: E402

__all__ = ["READERS", "edgelist", "reference", "static", "synthetic", "tgb"]
