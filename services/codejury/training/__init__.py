"""Self-training of the reranker: the labelled-candidate store, Bradley-Terry pairs,
reward-model training with TRL's ``RewardTrainer``, and cold-start mutation mining.

Heavy dependencies (torch, transformers, TRL, pyarrow: the ``train`` extra) are imported
by the modules that need them, never here.
"""
