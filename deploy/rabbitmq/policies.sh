#!/bin/sh
# The RabbitMQ policies Warren relies on, applied with rabbitmqctl on a broker node.
# Idempotent (set_policy replaces a policy of the same name): run it after every deploy.
#
#   sh deploy/rabbitmq/policies.sh                      # namespace warren, vhost /
#   WARREN_NAMESPACE=shop RABBITMQ_VHOST=prod sh deploy/rabbitmq/policies.sh
#
# compose.yaml runs it in the rabbitmq container once the node is up; on Kubernetes the same
# policy is a Policy resource of the RabbitMQ Messaging Topology Operator
# (deploy/kubernetes/rabbitmq.yaml), and tests/deploy checks that the two agree.
#
# Why a policy and not only queue arguments: arguments are fixed when a queue is declared
# (changing one makes every later declare fail), while a policy can be changed on a live broker.
# Where both set a limit, the lower one applies, so WARREN_MAX_QUEUE_LENGTH and
# WARREN_DELIVERY_LIMIT can only tighten these.
set -eu

namespace=${WARREN_NAMESPACE:-warren}
vhost=${RABBITMQ_VHOST:-/}
# Ready messages a work queue may hold. Far above a healthy backlog: it is a guard against a
# stalled consumer filling the broker's memory and disk, not a throttle.
max_length=${WORK_QUEUE_MAX_LENGTH:-100000}
# Must not exceed WARREN_DELIVERY_LIMIT's value in the deployment (the lower one applies).
delivery_limit=${WARREN_DELIVERY_LIMIT:-20}

# compose starts this right after the container: wait until the node accepts commands.
rabbitmqctl await_startup

# Work queues only: <namespace>.<queue>, a single dot (retry tiers and dead letters have more).
#  max-length + overflow=reject-publish: a full work queue refuses new messages and the broker
#    nacks the gateway's publish, which answers 503 with Retry-After: back-pressure reaches the
#    client instead of memory alarms blocking every publisher. (The default overflow,
#    drop-head, would silently discard the oldest tasks.) With classic queues, retries that
#    expire back into a full queue are dropped; with quorum queues (at-least-once
#    dead-lettering) they wait in their tier queue until there is room.
#  delivery-limit (quorum queues; classic queues ignore it): after this many deliveries the
#    broker dead-letters the message itself, so a task that kills its consumer process before
#    any ack cannot crash-loop a deployment forever. Consumers dead-letter it one delivery
#    earlier, with a reason and an event (and count on classic queues themselves).
# Retry tier and dead-letter queues get no limit on purpose: refusing a retry or a dead letter
# would leave the consumer unable to settle the delivery. Watch their depth instead
# (warren_queue_messages{kind="retry"|"dead"}).
rabbitmqctl set_policy --vhost "$vhost" --apply-to queues --priority 10 \
  "${namespace}-work" "^${namespace}\\.[^.]+\$" \
  "{\"max-length\": ${max_length}, \"overflow\": \"reject-publish\", \"delivery-limit\": ${delivery_limit}}"
