from codejury.bus import topics


def test_every_pipeline_topic_has_a_dlq_and_names_follow_the_architecture() -> None:
    names = topics.all_topics()
    assert "codejury.solve.requested" in names
    assert "codejury.feedback.dlq" in names
    assert len(names) == 2 * len(topics.PIPELINE_TOPICS) == len(set(names))
    assert all(t.startswith("codejury.") for t in names)
