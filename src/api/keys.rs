//! Label, annotation and finalizer keys: the marks molt leaves on cluster objects.
//!
//! These are part of the public contract (runbooks and other tools read them), so they live
//! together and never change meaning.

/// API group of molt's resources.
/// Node conditions that, `True` on a new node, make it unhealthy: a kubelet under memory, disk or
/// PID pressure is already evicting pods, and a node without network cannot serve them.
pub const NODE_TROUBLES: [&str; 4] = [
    "MemoryPressure",
    "DiskPressure",
    "PIDPressure",
    "NetworkUnavailable",
];

pub const GROUP: &str = "molt.dev";

/// Annotation on every node molt provisioned: the full image reference it runs (`spec.target.image`).
pub const IMAGE_ANNOTATION: &str = "molt.dev/image";

/// Label on every node molt provisioned: [`image_label_value`] of the image it runs, so nodes can
/// be selected by image (`-l molt.dev/image-hash=<value>`) whatever the reference looks like.
pub const IMAGE_HASH_LABEL: &str = "molt.dev/image-hash";

/// Label that molt versions before the image annotation put on the nodes they provisioned: the raw
/// image. molt no longer writes it; it reads it only for nodes that lack [`IMAGE_ANNOTATION`].
pub const IMAGE_LABEL: &str = "molt.dev/image";

/// Label on every node molt provisioned: the slot it fills (see `BatchStatus::new_nodes`). A
/// provider guarantees it, or reports the binding some other way.
pub const SLOT_LABEL: &str = "molt.dev/slot";

/// Longest `spec.target.image` the CRD admits, in characters.
pub const MAX_IMAGE_LEN: usize = 512;

/// Label on every node molt provisioned: the plan that provisioned it.
pub const PLAN_LABEL: &str = "molt.dev/plan";

/// Annotation on a new node: the old node it replaces.
pub const REPLACES_ANNOTATION: &str = "molt.dev/replaces";

/// Annotation on a new node: the batch (index) that provisioned it.
pub const BATCH_ANNOTATION: &str = "molt.dev/batch";

/// Annotation on an old node: the plan that claimed it. A node belongs to at most one active plan.
pub const CLAIMED_BY_ANNOTATION: &str = "molt.dev/claimed-by";

/// Annotation on a node molt cordoned, written in the same patch as the cordon: the plan that did it.
/// molt only ever uncordons nodes that carry this annotation with its own plan's name.
pub const CORDONED_BY_ANNOTATION: &str = "molt.dev/cordoned-by";

/// Finalizer on every plan: deletion waits until molt has uncordoned what it cordoned.
pub const FINALIZER: &str = "molt.dev/cleanup";

/// Field manager for server-side apply.
pub const FIELD_MANAGER: &str = "molt";

/// Labels that mark a control-plane node; such nodes are never cordoned or drained.
pub const CONTROL_PLANE_LABELS: [&str; 2] = [
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
];

/// Annotation the kubelet puts on mirror pods (static pods); they cannot be evicted.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Node labels a new node must not inherit from the node it replaces: they name the old machine.
pub const NODE_IDENTITY_LABELS: [&str; 1] = ["kubernetes.io/hostname"];

/// The value of [`IMAGE_HASH_LABEL`] for `image`: always the 64-bit FNV-1a hash of the image's
/// UTF-8 bytes, as 16 lowercase hex digits.
///
/// Always a hash, never the image itself even when the image would be a valid label value, so the
/// label has one form and a value cannot be mistaken for an image. FNV-1a is a fixed, published
/// algorithm (unlike Rust's `DefaultHasher`), so the value is the same across molt versions and
/// platforms and another tool can compute it. It is not a security boundary: molt decides which
/// image a node runs from the full reference in [`IMAGE_ANNOTATION`], never from this label.
pub fn image_label_value(image: &str) -> String {
    format!("{:016x}", fnv1a_64(image.as_bytes()))
}

/// 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_image_label_value_is_a_stable_valid_label_value() {
        assert_eq!(image_label_value("foobar"), "85944171f73967e8");
        let digest = format!("public.ecr.aws/bottlerocket/x@sha256:{}", "a".repeat(64));
        for image in [
            "ami-0abcdef1234567890",
            "ghcr.io/siderolabs/installer:v1.9.0",
            digest.as_str(),
            "Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest",
            "projects/x/global/images/y",
            "v2",
            &"x".repeat(MAX_IMAGE_LEN),
        ] {
            let v = image_label_value(image);
            assert_eq!(v.len(), 16, "{image}");
            assert!(
                v.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
            assert_eq!(v, image_label_value(image));
        }
        assert_ne!(image_label_value("v1"), image_label_value("v2"));
    }
}
