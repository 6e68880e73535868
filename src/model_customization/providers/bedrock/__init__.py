"""Fine-tuning through Amazon Bedrock: Nova, Llama, Titan Text, Cohere Command, and Claude 3 Haiku while offered.

clients.py        boto3 clients and the operator's settings (bucket, prefix, role, region), with a test hook
families.py       the model families: training format, hyperparameters (names, ranges, defaults), limits, the default order
formats.py        a stored example in each family's format, and that family's checks of it
hyperparameters.py the validated hyperparameters (no boto3: the MCP tools import it for their schemas)
training.py       BedrockJobs: discovery of the base models the account may fine-tune, S3 upload, the
                  customization job's life cycle, and provisioned throughput for the tuned model
chat.py           prompting a tuned model through its provisioned throughput, or a base model on demand (Converse API)

boto3 is imported only inside these modules' functions, so nothing AWS-related loads at server start-up.
"""
