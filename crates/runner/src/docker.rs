//! [`ContainerEngine`] over the Docker Engine API (bollard), negotiating the
//! API version so engines as old as API 1.41 work.

use crate::engine::*;
use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use std::collections::HashMap;

/// The real engine.
#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
    host: String,
}

impl DockerEngine {
    /// Connects to `docker_host` (`unix:///var/run/docker.sock` or
    /// `tcp://host:port`) and negotiates the API version.
    pub async fn connect(docker_host: &str) -> Result<Self, EngineError> {
        let unreachable = |e: &dyn std::fmt::Display| EngineError::Unreachable {
            host: docker_host.to_owned(),
            detail: e.to_string(),
        };
        let docker = if docker_host.starts_with("unix://") {
            Docker::connect_with_unix(docker_host, 120, bollard::API_DEFAULT_VERSION)
        } else {
            let addr = docker_host.replacen("tcp://", "http://", 1);
            Docker::connect_with_http(&addr, 120, bollard::API_DEFAULT_VERSION)
        }
        .map_err(|e| unreachable(&e))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(&e))?;
        Ok(Self {
            docker,
            host: docker_host.to_owned(),
        })
    }
}

fn other(e: BollardError) -> EngineError {
    EngineError::Other(e.to_string())
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn is_not_running(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }
    )
}

#[async_trait]
impl ContainerEngine for DockerEngine {
    async fn check(&self, image: &str) -> Result<(), EngineError> {
        self.docker
            .ping()
            .await
            .map_err(|e| EngineError::Unreachable {
                host: self.host.clone(),
                detail: e.to_string(),
            })?;
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Err(EngineError::ImageMissing(image.to_owned())),
            Err(e) => Err(other(e)),
        }
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let l = &spec.limits;
        let host_config = HostConfig {
            binds: Some(vec![format!("{}:/workspace:ro", spec.workspace.display())]),
            memory: Some(l.memory_bytes),
            memory_swap: Some(l.memory_bytes),
            nano_cpus: Some(l.nano_cpus),
            pids_limit: Some(l.pids_limit),
            network_mode: Some(l.network_mode.clone()),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                format!("rw,noexec,nosuid,nodev,size={}", l.tmpfs_bytes),
            )])),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: Some(spec.cmd.clone()),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone()),
            user: Some(l.user.clone()),
            working_dir: Some("/tmp".into()),
            network_disabled: Some(l.network_mode == "none"),
            host_config: Some(host_config),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(other)?;
        Ok(created.id)
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        self.docker.start_container(id, None).await.map_err(other)
    }

    fn output(&self, id: &str) -> BoxStream<'static, Result<OutputChunk, EngineError>> {
        let opts = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        self.docker
            .logs(id, Some(opts))
            .filter_map(|item| async move {
                match item {
                    Ok(bollard::container::LogOutput::StdOut { message }) => {
                        Some(Ok(OutputChunk {
                            stream: OutputStream::Stdout,
                            bytes: message.to_vec(),
                        }))
                    }
                    Ok(bollard::container::LogOutput::StdErr { message }) => {
                        Some(Ok(OutputChunk {
                            stream: OutputStream::Stderr,
                            bytes: message.to_vec(),
                        }))
                    }
                    Ok(_) => None,
                    Err(e) => Some(Err(other(e))),
                }
            })
            .boxed()
    }

    async fn wait(&self, id: &str) -> Result<ExitStatus, EngineError> {
        let mut s = self.docker.wait_container(id, None);
        let code = match s.next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(other(e)),
            None => {
                return Err(EngineError::Other(format!(
                    "no wait answer for container {id}"
                )));
            }
        };
        let inspect = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(other)?;
        let oom_killed = inspect.state.and_then(|s| s.oom_killed).unwrap_or(false);
        Ok(ExitStatus { code, oom_killed })
    }

    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        let opts = KillContainerOptionsBuilder::default()
            .signal("SIGKILL")
            .build();
        match self.docker.kill_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_running(&e) => Ok(()),
            Err(e) => Err(other(e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 409: removal already in progress.
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(other(e)),
        }
    }

    async fn list_labelled(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<ContainerInfo>, EngineError> {
        let filters = HashMap::from([("label", vec![format!("{key}={value}")])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(other)?;
        Ok(list
            .into_iter()
            .map(|c| ContainerInfo {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_owned(),
                labels: c.labels.unwrap_or_default(),
            })
            .collect())
    }
}
