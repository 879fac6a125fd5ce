#!/usr/bin/python3
"""Compare OVF descriptors with lxml, an XML reader independent of ours.

  ovf_compare.py vm A.ovf B.ovf
      The VirtualSystem of B says what A's says: Name, OperatingSystemSection,
      every VirtualHardwareSection Item (all rasd elements and vmw:Config),
      System, the section's vmw:Config (firmware...), ProductSection(s) with
      their Properties, AnnotationSection. Prints the differences, exits 1.
  ovf_compare.py template OURS.ovf TEMPLATE.ovf
      OURS has the structure of an ova-compose template: the same namespaces
      for every element it uses, every element name it uses appears in the
      template, the same System elements, and each Item's elements in the
      template's order (sequence order is what the schema checks).
  ovf_compare.py get A.ovf XPATH   (prints the xpath's string results)
"""
import sys
from lxml import etree

NS = {
    "ovf": "http://schemas.dmtf.org/ovf/envelope/1",
    "rasd": "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData",
    "vssd": "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData",
    "vmw": "http://www.vmware.com/schema/ovf",
}


def load(path):
    return etree.parse(path, etree.XMLParser(remove_blank_text=True, resolve_entities=False,
                                             no_network=True)).getroot()


def canon(el):
    """An element as a comparable tree: tag, sorted attributes, text, children."""
    if not isinstance(el.tag, str):
        return None
    kids = [c for c in (canon(k) for k in el) if c is not None]
    return (el.tag, tuple(sorted(el.attrib.items())), (el.text or "").strip(), tuple(kids))


def vm(a_path, b_path):
    a, b = load(a_path), load(b_path)
    va, vb = a.find(".//ovf:VirtualSystem", NS), b.find(".//ovf:VirtualSystem", NS)
    if va is None or vb is None:
        print("no VirtualSystem in", a_path if va is None else b_path)
        return 1
    bad = 0
    # Every direct child section of VirtualSystem, in order.
    ca = [canon(c) for c in va if isinstance(c.tag, str)]
    cb = [canon(c) for c in vb if isinstance(c.tag, str)]
    if [c[0] for c in ca] != [c[0] for c in cb]:
        print("VirtualSystem sections differ:", [c[0] for c in ca], "vs", [c[0] for c in cb])
        bad = 1
    for x, y in zip(ca, cb):
        if x != y:
            print("section", etree.QName(x[0]).localname, "differs:\n  ", x, "\n  ", y)
            bad = 1
    if va.attrib != vb.attrib:
        print("VirtualSystem attributes differ:", dict(va.attrib), dict(vb.attrib))
        bad = 1
    hw = vb.find("ovf:VirtualHardwareSection", NS)
    n = len(hw.findall("ovf:Item", NS)) if hw is not None else 0
    if not bad:
        print(f"same VirtualSystem: {len(ca)} sections, {n} hardware items")
    return bad


def template(ours_path, tmpl_path):
    ours, tmpl = load(ours_path), load(tmpl_path)
    bad = 0
    names_t = {el.tag for el in tmpl.iter() if isinstance(el.tag, str)}
    for el in ours.iter():
        if isinstance(el.tag, str) and el.tag not in names_t:
            print("element not in the template:", el.tag)
            bad = 1
    sys_o = [c.tag for c in ours.find(".//ovf:VirtualHardwareSection/ovf:System", NS)]
    sys_t = [c.tag for c in tmpl.find(".//ovf:VirtualHardwareSection/ovf:System", NS)]
    if sys_o != sys_t:
        print("System differs:", sys_o, sys_t)
        bad = 1
    vst_o = ours.findtext(".//vssd:VirtualSystemType", namespaces=NS)
    vst_t = tmpl.findtext(".//vssd:VirtualSystemType", namespaces=NS)
    if vst_o != vst_t:
        print("VirtualSystemType:", vst_o, "template:", vst_t)
        bad = 1
    # The order of rasd elements in the template's Items (alphabetical, as
    # the CIM schema's sequence wants).
    order = []
    for item in tmpl.iterfind(".//ovf:Item", NS):
        for c in item:
            if c.tag not in order:
                order.append(c.tag)
    for item in ours.iterfind(".//ovf:Item", NS):
        tags = [c.tag for c in item]
        known = [t for t in tags if t in order]
        if known != sorted(known, key=lambda t: sorted(order).index(t)) and tags != sorted(tags):
            print("Item elements out of order:", tags)
            bad = 1
    # Resource types: ours must be ones the template (VMware's) uses, or a
    # controller type ova-compose writes (5 IDE, 6 SCSI, 20 SATA/NVMe).
    rt_t = {t.text for t in tmpl.iterfind(".//rasd:ResourceType", NS)} | {"5", "6", "20"}
    for t in ours.iterfind(".//rasd:ResourceType", NS):
        if t.text not in rt_t:
            print("ResourceType", t.text, "not in the template")
            bad = 1
    # Firmware is a vmw:Config of the VirtualHardwareSection in both.
    fw_t = tmpl.find(".//ovf:VirtualHardwareSection/vmw:Config[@vmw:key='firmware']", NS)
    fw_o = ours.find(".//ovf:VirtualHardwareSection/vmw:Config[@vmw:key='firmware']", NS)
    if (fw_t is None) != (fw_o is None):
        print("firmware vmw:Config: template", fw_t is not None, "ours", fw_o is not None)
        bad = 1
    if not bad:
        print(f"matches {tmpl_path.rsplit('/', 1)[-1]}: {vst_o}")
    return bad


def get(path, xpath):
    for r in load(path).xpath(xpath, namespaces=NS):
        print(r if isinstance(r, str) else (r.text or "").strip())
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    sys.exit({"vm": vm, "template": template, "get": get}[cmd](*sys.argv[2:]))
