"""Limits of the AWS services the classifier is sized by: facts about DynamoDB and Lambda, not settings.

Each is imported by the code that must respect it and by :mod:`.settings`, which bounds the configurable
values by them; this module imports nothing, so the cheapest module can use it.
"""

from __future__ import annotations

#: The most actions one DynamoDB ``TransactWriteItems`` call takes (and so the API's batch limit).
MAX_TRANSACTION_ITEMS = 100
#: The most keys one DynamoDB ``BatchGetItem`` call takes.
MAX_BATCH_GET_KEYS = 100
#: DynamoDB's largest item: a stored result (its classes, two per-class figures, the embedding) must fit.
DYNAMODB_ITEM_BYTES = 400 * 1024
#: The largest response of a synchronously invoked Lambda function: a full batch of API results must fit.
LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024
