"""Deployment: render and check the Helm chart (charts/codejury) without a helm binary."""
