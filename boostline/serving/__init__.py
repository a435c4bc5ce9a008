"""Serving: the local endpoint (server), data capture (capture) and batch predictions (batch).

All three run training_scripts/inference.py, the module SageMaker serves, so a
local answer is the endpoint's answer.
"""
