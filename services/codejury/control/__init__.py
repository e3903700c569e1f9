"""Run control: the ``SelfTrainingRun`` spec, its status, and the pure state machine that
drives it (training job per iteration, canary analysis, promotion or rollback, the
hard-negative trigger).

Everything here is pure: no Kafka, files, Kubernetes or clocks. The local runtime and
the kopf operator observe the world, call ``reconcile.reconcile`` and apply the actions
it returns.
"""
