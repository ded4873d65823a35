"""What a materialization records about the observable sources it read.

Dagster records, with each materialization, the data version its observable
sources had *when last observed*: "never observed" when the run did not observe
them first (`dagster asset materialize --select '*'`, *Materialize all* in the
UI). The first observation afterwards then looks like a change, though the
files are the ones that were read. So an asset that reads a source also records
the source's data version as it found it, under this metadata key, and
defs/automation/what_changed.py trusts that record over Dagster's.

Kept apart and small: an asset's code version covers the modules it imports.
"""

SOURCE_VERSIONS_READ = "source_versions_read"  # metadata: {source asset key: data version it had when read}
