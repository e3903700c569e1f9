"""The local runtime of `codejury run`: the control state machine driven on one machine,
training iterations as child processes, the canary's traffic metered over Kafka."""
