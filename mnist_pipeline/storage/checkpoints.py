"""File names inside a training checkpoint directory, shared by training (which writes them) and `models prune` (which reads them)."""

# In a checkpoint directory while its training can be resumed.
CHECKPOINT_STATE_FILE = "state.json"
