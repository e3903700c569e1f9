"""The generation service: N candidate programs per problem from a language model.

requests     validation and sampling defaults (pure)
languages    names, code-fence tags and default stop sequences (pure)
prompts      completion-style prompt or chat request per problem (pure)
stopping     where a completion ends: stop sequences, closed code blocks (pure)
extraction   from a chat answer to the completion of the prompt (pure)
backends/    the backend interface; transformers (in process) and OpenAI-compatible HTTP
generator    problems in, Candidate protos out (ids, model, sampling, log-probs)
service      the Generation gRPC servicer
stage        the Kafka handler solve.requested -> candidates.generated
factory      the configured backend and generator, built once
bench        throughput of batched against sequential sampling
"""
