"""The firmware app keeps no rows of its own: a software update is a cluster Rollout (cluster.models)."""
