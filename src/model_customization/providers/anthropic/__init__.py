"""Anthropic's Messages API: prompting Claude models and using them as judges (the API has no fine-tuning).

Import the submodules (client, chat) only when an Anthropic model is used: they load the `anthropic` SDK.
"""
