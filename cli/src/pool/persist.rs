//! What makes the pools last across a reboot: a sysctl.d file for the 2 MiB pool, and for the
//! 1 GiB pool the kernel command line (the only time contiguous gigabytes are sure to be free)
//! or, failing that, a systemd unit that asks for them early in boot.

use std::path::{Path, PathBuf};

/// The sysctl.d file, under the root.
pub const SYSCTL: &str = "etc/sysctl.d/90-hugeheap.conf";
/// The systemd unit, under the root.
pub const UNIT: &str = "etc/systemd/system/hugeheap-pools.service";

/// The lines for pools of `gib` 1 GiB and `mib` 2 MiB pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persist {
    /// 1 GiB pages.
    pub gib: usize,
    /// 2 MiB pages.
    pub mib: usize,
}

impl Persist {
    /// The sysctl.d file's text.
    pub fn sysctl(&self) -> String {
        format!("# hugetlb pool for hugeheap (`hugeheap pool`): {} x 2 MiB\nvm.nr_hugepages = {}\n", self.mib, self.mib)
    }

    /// The kernel command line's words for the 1 GiB pool (and the 2 MiB one, reserved at
    /// boot before memory fragments); `None` without 1 GiB pages.
    pub fn cmdline(&self) -> Option<String> {
        (self.gib > 0).then(|| format!("hugepagesz=1G hugepages={} hugepagesz=2M hugepages={}", self.gib, self.mib))
    }

    /// The systemd unit that asks for the 1 GiB pages early in boot; `None` without them.
    pub fn unit(&self) -> Option<String> {
        (self.gib > 0).then(|| {
            format!(
                "# 1 GiB hugetlb pages for hugeheap (`hugeheap pool`), asked for before services start;\n\
                 # the kernel command line gets them more surely.\n\
                 [Unit]\n\
                 Description=hugeheap: reserve 1 GiB huge pages\n\
                 DefaultDependencies=no\n\
                 Before=sysinit.target\n\
                 ConditionPathExists=/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages\n\n\
                 [Service]\n\
                 Type=oneshot\n\
                 ExecStart=/bin/sh -c 'echo {} > /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages'\n\n\
                 [Install]\n\
                 WantedBy=sysinit.target\n",
                self.gib
            )
        })
    }

    /// The instructions, with the files' contents, as printed.
    pub fn text(&self) -> String {
        let mut o = format!("# /{SYSCTL} (the 2 MiB pool at each boot)\n{}", self.sysctl());
        if let (Some(cmdline), Some(unit)) = (self.cmdline(), self.unit()) {
            o += &format!(
                "\n# The 1 GiB pool: on the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then\n\
                 # `update-grub` and a reboot):\n#   {cmdline}\n\
                 # or, where the kernel command line cannot change, /{UNIT}\n\
                 # (then `systemctl enable hugeheap-pools.service`):\n{unit}"
            );
        }
        o
    }

    /// Writes the files under `root` (`/` for this machine); returns the paths written.
    pub fn write(&self, root: &Path) -> Result<Vec<PathBuf>, String> {
        let mut files = vec![(SYSCTL, self.sysctl())];
        if let Some(unit) = self.unit() {
            files.push((UNIT, unit));
        }
        let mut written = Vec::new();
        for (rel, text) in files {
            let path = root.join(rel);
            let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
            std::fs::create_dir_all(path.parent().unwrap_or(root)).map_err(fail)?;
            std::fs::write(&path, text).map_err(fail)?;
            written.push(path);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_gigabyte_pages_only_the_sysctl_line() {
        let p = Persist { gib: 0, mib: 1280 };
        assert!(p.sysctl().contains("vm.nr_hugepages = 1280\n"));
        assert_eq!((p.cmdline(), p.unit()), (None, None));
        assert!(!p.text().contains("hugepagesz"));
    }

    #[test]
    fn gigabyte_pages_get_the_command_line_and_a_unit() {
        let p = Persist { gib: 2, mib: 640 };
        assert_eq!(p.cmdline().unwrap(), "hugepagesz=1G hugepages=2 hugepagesz=2M hugepages=640");
        let unit = p.unit().unwrap();
        assert!(unit.contains("echo 2 > /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"), "{unit}");
        assert!(unit.contains("WantedBy=sysinit.target"));
    }
}
