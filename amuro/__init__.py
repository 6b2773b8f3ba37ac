"""amuro: tracked experiments on how pre-training and fine-tuning of language models interact.

Entry points (each one module, one public function taking one config object):
``pretrain``, ``pretrain-eval``, ``finetune``, ``crosseval``, ``sweep``; the ``analysis`` package reads
the results back from the tracking server.
"""

__version__ = "0.1.0"
