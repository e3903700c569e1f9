"""The solve pipeline over Kafka (generate -> execute -> rank) and its front door."""
