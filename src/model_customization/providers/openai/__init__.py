"""OpenAI-compatible fine-tuning and chat: files, jobs and chat through the `openai` SDK (imported only when used).

endpoints.py says where each service is and how it differs (api.openai.com, Azure OpenAI v1, the config file's
[openai_compatible.<name>] tables); provider.py has one provider class per endpoint (configured.py makes the config
file's into registry targets); client.py builds the SDK client for an endpoint (bearer, api-key header or no auth);
availability.py refuses early (closing dates, retired or unlisted base models, organisations without access);
files.py uploads training files once per content; training.py is the job life cycle; chat.py answers prompts and
judges through chat completions; hyperparameters.py has no SDK import so the MCP tools can publish its schema.
"""
