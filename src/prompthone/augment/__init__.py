"""PAS (Zheng et al., 2024): a small model that writes a complementary prompt, plugged in front of any LLM.

`designs` says what an augmenter writes (a PAS complement, or a BPO-style rewrite built by our own pipeline, not
Cheng et al.'s BPO model) and how it meets the user's prompt; `pipeline` curates training pairs; `train`
fine-tunes the complement model (LoRA); `augmenter` wraps any pair of models; `judge` and `evaluate` measure the
judged win rate.
"""
