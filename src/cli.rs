//! The `molt` command line.

use clap::{Parser, Subcommand};

/// molt rolls node OS-image updates through a Kubernetes cluster, gated on workload health.
#[derive(Debug, Parser)]
#[command(name = "molt", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the NodeUpdatePlan CustomResourceDefinition as YAML (the same as crds/).
    Crd,
    /// Print molt's version.
    Version,
}
