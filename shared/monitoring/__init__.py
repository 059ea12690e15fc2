"""Model monitoring: feature and prediction drift, input quality and realised performance of a
model over a window, and the action they call for (none, warn, retrain)."""
