"""Claude customization through Amazon Bedrock.

clients.py        boto3 clients and the operator's settings (bucket, prefix, role, region), with a test hook
hyperparameters.py the validated hyperparameters (no boto3: the MCP tools import it for their schemas)
training.py       BedrockProvider: discovery of the Claude base models that offer fine-tuning, S3 upload, the
                  customization job's life cycle, and provisioned throughput for the tuned model
chat.py           prompting a tuned model through its provisioned throughput, or a base model on demand

boto3 is imported only inside these modules' functions, so nothing AWS-related loads at server start-up.
"""
