"""VPC mode (`stages.<stage>.vpc.enabled`): private subnets and VPC endpoints for jobs.

SageMaker jobs attach to isolated subnets (no internet gateway, no NAT) and reach
S3 through a gateway endpoint and Secrets Manager through an interface endpoint.
Training also runs with network isolation (set in the pipeline definition), so the
training container itself has no network at all; SageMaker moves its data.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from boostline.config import BoostlineConfig

from . import nag
from .iam import arn
from .naming import Names


@dataclass(frozen=True)
class NetworkRefs:
    subnet_ids: tuple[str, ...]
    subnet_arns: tuple[str, ...]
    security_group_id: str
    security_group_arns: tuple[str, ...]


class NetworkStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: BoostlineConfig,
        stage: str,
        names: Names,
        flow_log_bucket: s3.IBucket,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        stage_config = config.stage(stage)
        vpc_config = stage_config.vpc
        # Named AZs: synth never looks them up, even for a stage pinned to an account.
        zones = vpc_config.availability_zones or [
            f"{stage_config.region}a",
            f"{stage_config.region}b",
        ]
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            vpc_name=names.prefix,
            ip_addresses=ec2.IpAddresses.cidr(vpc_config.cidr),
            availability_zones=zones,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="jobs", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22
                )
            ],
            restrict_default_security_group=False,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_s3(flow_log_bucket, "vpc-flow-logs/"),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        nag.acknowledge(
            nag.cfn(self.vpc),
            "NIST.800.53.R5-VPCDefaultSecurityGroupClosed",
            "No resource uses the default security group; closing it needs a CDK custom "
            "resource Lambda this stack avoids.",
        )
        isolated = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        selection = self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)

        self.security_group = ec2.SecurityGroup(
            self,
            "JobSecurityGroup",
            vpc=self.vpc,
            description=f"{names.prefix}: SageMaker processing and training jobs",
            allow_all_outbound=False,
        )
        # Distributed training: the hosts of one job talk to each other.
        self.security_group.add_ingress_rule(
            self.security_group, ec2.Port.all_tcp(), "between hosts of one training job"
        )
        self.security_group.add_egress_rule(
            self.security_group, ec2.Port.all_tcp(), "between hosts of one training job"
        )
        # HTTPS to anywhere reaches only the endpoints: the subnets have no route out.
        # (Naming the S3 prefix list instead would need a synth-time lookup.)
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "AWS endpoints (no route to the internet)"
        )

        self.vpc.add_gateway_endpoint(
            "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[isolated]
        )
        endpoint_sg = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description=f"{names.prefix}: VPC interface endpoints",
            allow_all_outbound=False,
        )
        endpoint_sg.add_ingress_rule(self.security_group, ec2.Port.tcp(443), "jobs to endpoints")
        # Secrets Manager: the PII salt. SageMaker API: the evaluation reads its tuning job's
        # trials for the report's lineage (without it those calls time out in the VPC).
        for name, service in (
            ("SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
            ("SageMakerApi", ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API),
        ):
            self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=isolated,
                security_groups=[endpoint_sg],
                private_dns_enabled=True,
                open=False,  # only the job security group, added above
            )

        subnet_ids = tuple(subnet.subnet_id for subnet in selection.subnets)
        self.refs = NetworkRefs(
            subnet_ids=subnet_ids,
            subnet_arns=tuple(arn("ec2", f"subnet/{sid}") for sid in subnet_ids),
            security_group_id=self.security_group.security_group_id,
            security_group_arns=(
                arn("ec2", f"security-group/{self.security_group.security_group_id}"),
            ),
        )
        CfnOutput(self, "VpcId", value=self.vpc.vpc_id)
        CfnOutput(self, "JobSecurityGroupId", value=self.security_group.security_group_id)
