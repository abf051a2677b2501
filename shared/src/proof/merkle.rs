//! RFC 6962 §2.1 Merkle Tree Hash over a list of leaves, its audit paths (§2.1.1) and their
//! verification (RFC 9162 §2.1.3.2). Leaves and nodes are hashed with distinct prefixes (0x00,
//! 0x01) so a leaf can never pass for an inner node.

use sha2::{Digest, Sha256};

type Hash = [u8; 32];

fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (n ≥ 2): where RFC 6962 splits a tree.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH over leaf hashes already taken. Each node is hashed once: O(n).
fn subtree_root(hashes: &[Hash]) -> Hash {
    match hashes {
        [] => Sha256::digest([]).into(),
        [one] => *one,
        _ => {
            let k = split(hashes.len());
            node_hash(&subtree_root(&hashes[..k]), &subtree_root(&hashes[k..]))
        }
    }
}

/// The Merkle Tree Hash of `leaves` (RFC 6962 §2.1); SHA-256 of nothing for no leaves.
pub fn root<L: AsRef<[u8]>>(leaves: &[L]) -> [u8; 32] {
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    subtree_root(&hashes)
}

/// The audit path of leaf `index` (RFC 6962 §2.1.1 PATH), nearest sibling first; empty when
/// `index` is out of range or the tree has one leaf.
pub fn inclusion_proof<L: AsRef<[u8]>>(leaves: &[L], index: usize) -> Vec<[u8; 32]> {
    if index >= leaves.len() {
        return Vec::new();
    }
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    let mut path = Vec::new();
    // Walk down from the root, noting the sibling subtree at each split; the path lists them
    // from the leaf up, so reverse at the end.
    let (mut lo, mut hi, mut m) = (0, hashes.len(), index);
    while hi - lo > 1 {
        let k = split(hi - lo);
        if m < k {
            path.push(subtree_root(&hashes[lo + k..hi]));
            hi = lo + k;
        } else {
            path.push(subtree_root(&hashes[lo..lo + k]));
            lo += k;
            m -= k;
        }
    }
    path.reverse();
    path
}

/// Whether `proof` shows `leaf_data` at `index` in the tree of `tree_size` leaves whose root is
/// `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf_data: &[u8], index: u64, tree_size: u64, proof: &[[u8; 32]], root: &[u8; 32]) -> bool {
    if index >= tree_size {
        return false;
    }
    let (mut fnode, mut snode) = (index, tree_size - 1);
    let mut r = leaf_hash(leaf_data);
    for p in proof {
        if snode == 0 {
            // The proof is longer than the path.
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                // A right-edge node with no sibling at these levels: climb past them.
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    // The RFC 6962 / Certificate Transparency reference leaves (hex) and the roots of their first
    // n leaves, n = 0..=8.
    const LEAVES: [&str; 8] =
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn leaves() -> Vec<Vec<u8>> {
        LEAVES.iter().map(|l| hex::decode(l).unwrap()).collect()
    }

    fn hexes(path: &[[u8; 32]]) -> Vec<String> {
        path.iter().map(hex::encode).collect()
    }

    #[test]
    fn reference_roots() {
        let leaves = leaves();
        for (n, expected) in ROOTS.iter().enumerate() {
            assert_eq!(hex::encode(root(&leaves[..n])), *expected, "size {n}");
        }
    }

    #[test]
    fn reference_inclusion_proofs() {
        // Audit paths from the CT reference data.
        let leaves = leaves();
        let cases: &[(usize, usize, &[&str])] = &[
            (0, 1, &[]),
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for &(index, size, expected) in cases {
            assert_eq!(hexes(&inclusion_proof(&leaves[..size], index)), expected, "leaf {index} of {size}");
        }
    }

    #[test]
    fn inclusion_proofs_round_trip_and_refuse_forgeries() {
        let leaves: Vec<Vec<u8>> = (0u32..20).map(|i| format!("leaf {i}").into_bytes()).collect();
        for size in 1..=20usize {
            let tree = &leaves[..size];
            let r = root(tree);
            let size64 = size as u64;
            for index in 0..size {
                let proof = inclusion_proof(tree, index);
                let i64_ = index as u64;
                assert!(verify_inclusion(&tree[index], i64_, size64, &proof, &r), "leaf {index} of {size}");
                // Wrong leaf, wrong index, wrong root, index past the end.
                assert!(!verify_inclusion(b"forged", i64_, size64, &proof, &r));
                if size > 1 {
                    let other = (index + 1) % size;
                    assert!(!verify_inclusion(&tree[index], other as u64, size64, &proof, &r));
                }
                assert!(!verify_inclusion(&tree[index], i64_, size64, &proof, &root(&leaves[..size - 1])));
                assert!(!verify_inclusion(&tree[index], size64, size64, &proof, &r));
                // A proof with a step too many or too few.
                let mut longer = proof.clone();
                longer.push([0u8; 32]);
                assert!(!verify_inclusion(&tree[index], i64_, size64, &longer, &r));
                if let Some((_, shorter)) = proof.split_last() {
                    assert!(!verify_inclusion(&tree[index], i64_, size64, shorter, &r));
                }
            }
        }
    }

    #[test]
    fn out_of_range_index_has_no_proof() {
        assert!(inclusion_proof(&leaves(), 8).is_empty());
        assert!(!verify_inclusion(b"", 0, 0, &[], &root::<&[u8]>(&[])));
    }
}
