"""The cloud worker path: jobs sent to a company's SQS queue, sent by a Lambda through SES.

`sqs.py` runs in the mailer (hands chunks to SQS), `handler.py` is the reference Lambda
(stdlib + boto3 + common/templating.py), `signing.py` is the callback signature both the
Lambda and the web tier's callback endpoint use.
"""
