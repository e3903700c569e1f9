"""The demo's orchestration above training and the pipeline: its self-training finale."""
