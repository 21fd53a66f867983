"""TFDS builder `cub2011`: CUB-200-2011 from a manually extracted archive.

Caltech-UCSD Birds-200-2011 (Wah et al. 2011): 11,788 photos of 200 North
American bird species, 5,994 for training and 5,794 for testing, one box
per bird. TFDS's own `caltech_birds2011` cannot be used: its
`_split_generators` only calls `dl_manager.download` and
`download_and_extract` on the data.caltech.edu URLs of CUB_200_2011.tgz and
segmentations.tgz, and it has no MANUAL_DOWNLOAD_INSTRUCTIONS, so it never
reads a manual dir (it also decodes segmentation masks we do not need).
"""
from etils import epath
import tensorflow_datasets as tfds

from data_pipelines import birds_common

FOLDER = "CUB_200_2011"
NUM_CLASSES = 200

# The class folder names of classes.txt, in class-id order (label = id - 1).
# They keep the dataset's own spellings ("141.Artic_Tern", "103.Sayornis").
CLASS_NAMES = (
    "001.Black_footed_Albatross", "002.Laysan_Albatross",
    "003.Sooty_Albatross", "004.Groove_billed_Ani", "005.Crested_Auklet",
    "006.Least_Auklet", "007.Parakeet_Auklet", "008.Rhinoceros_Auklet",
    "009.Brewer_Blackbird", "010.Red_winged_Blackbird", "011.Rusty_Blackbird",
    "012.Yellow_headed_Blackbird", "013.Bobolink", "014.Indigo_Bunting",
    "015.Lazuli_Bunting", "016.Painted_Bunting", "017.Cardinal",
    "018.Spotted_Catbird", "019.Gray_Catbird", "020.Yellow_breasted_Chat",
    "021.Eastern_Towhee", "022.Chuck_will_Widow", "023.Brandt_Cormorant",
    "024.Red_faced_Cormorant", "025.Pelagic_Cormorant", "026.Bronzed_Cowbird",
    "027.Shiny_Cowbird", "028.Brown_Creeper", "029.American_Crow",
    "030.Fish_Crow", "031.Black_billed_Cuckoo", "032.Mangrove_Cuckoo",
    "033.Yellow_billed_Cuckoo", "034.Gray_crowned_Rosy_Finch",
    "035.Purple_Finch", "036.Northern_Flicker", "037.Acadian_Flycatcher",
    "038.Great_Crested_Flycatcher", "039.Least_Flycatcher",
    "040.Olive_sided_Flycatcher", "041.Scissor_tailed_Flycatcher",
    "042.Vermilion_Flycatcher", "043.Yellow_bellied_Flycatcher",
    "044.Frigatebird", "045.Northern_Fulmar", "046.Gadwall",
    "047.American_Goldfinch", "048.European_Goldfinch",
    "049.Boat_tailed_Grackle", "050.Eared_Grebe", "051.Horned_Grebe",
    "052.Pied_billed_Grebe", "053.Western_Grebe", "054.Blue_Grosbeak",
    "055.Evening_Grosbeak", "056.Pine_Grosbeak", "057.Rose_breasted_Grosbeak",
    "058.Pigeon_Guillemot", "059.California_Gull", "060.Glaucous_winged_Gull",
    "061.Heermann_Gull", "062.Herring_Gull", "063.Ivory_Gull",
    "064.Ring_billed_Gull", "065.Slaty_backed_Gull", "066.Western_Gull",
    "067.Anna_Hummingbird", "068.Ruby_throated_Hummingbird",
    "069.Rufous_Hummingbird", "070.Green_Violetear", "071.Long_tailed_Jaeger",
    "072.Pomarine_Jaeger", "073.Blue_Jay", "074.Florida_Jay", "075.Green_Jay",
    "076.Dark_eyed_Junco", "077.Tropical_Kingbird", "078.Gray_Kingbird",
    "079.Belted_Kingfisher", "080.Green_Kingfisher", "081.Pied_Kingfisher",
    "082.Ringed_Kingfisher", "083.White_breasted_Kingfisher",
    "084.Red_legged_Kittiwake", "085.Horned_Lark", "086.Pacific_Loon",
    "087.Mallard", "088.Western_Meadowlark", "089.Hooded_Merganser",
    "090.Red_breasted_Merganser", "091.Mockingbird", "092.Nighthawk",
    "093.Clark_Nutcracker", "094.White_breasted_Nuthatch",
    "095.Baltimore_Oriole", "096.Hooded_Oriole", "097.Orchard_Oriole",
    "098.Scott_Oriole", "099.Ovenbird", "100.Brown_Pelican",
    "101.White_Pelican", "102.Western_Wood_Pewee", "103.Sayornis",
    "104.American_Pipit", "105.Whip_poor_Will", "106.Horned_Puffin",
    "107.Common_Raven", "108.White_necked_Raven", "109.American_Redstart",
    "110.Geococcyx", "111.Loggerhead_Shrike", "112.Great_Grey_Shrike",
    "113.Baird_Sparrow", "114.Black_throated_Sparrow", "115.Brewer_Sparrow",
    "116.Chipping_Sparrow", "117.Clay_colored_Sparrow", "118.House_Sparrow",
    "119.Field_Sparrow", "120.Fox_Sparrow", "121.Grasshopper_Sparrow",
    "122.Harris_Sparrow", "123.Henslow_Sparrow", "124.Le_Conte_Sparrow",
    "125.Lincoln_Sparrow", "126.Nelson_Sharp_tailed_Sparrow",
    "127.Savannah_Sparrow", "128.Seaside_Sparrow", "129.Song_Sparrow",
    "130.Tree_Sparrow", "131.Vesper_Sparrow", "132.White_crowned_Sparrow",
    "133.White_throated_Sparrow", "134.Cape_Glossy_Starling",
    "135.Bank_Swallow", "136.Barn_Swallow", "137.Cliff_Swallow",
    "138.Tree_Swallow", "139.Scarlet_Tanager", "140.Summer_Tanager",
    "141.Artic_Tern", "142.Black_Tern", "143.Caspian_Tern", "144.Common_Tern",
    "145.Elegant_Tern", "146.Forsters_Tern", "147.Least_Tern",
    "148.Green_tailed_Towhee", "149.Brown_Thrasher", "150.Sage_Thrasher",
    "151.Black_capped_Vireo", "152.Blue_headed_Vireo",
    "153.Philadelphia_Vireo", "154.Red_eyed_Vireo", "155.Warbling_Vireo",
    "156.White_eyed_Vireo", "157.Yellow_throated_Vireo",
    "158.Bay_breasted_Warbler", "159.Black_and_white_Warbler",
    "160.Black_throated_Blue_Warbler", "161.Blue_winged_Warbler",
    "162.Canada_Warbler", "163.Cape_May_Warbler", "164.Cerulean_Warbler",
    "165.Chestnut_sided_Warbler", "166.Golden_winged_Warbler",
    "167.Hooded_Warbler", "168.Kentucky_Warbler", "169.Magnolia_Warbler",
    "170.Mourning_Warbler", "171.Myrtle_Warbler", "172.Nashville_Warbler",
    "173.Orange_crowned_Warbler", "174.Palm_Warbler", "175.Pine_Warbler",
    "176.Prairie_Warbler", "177.Prothonotary_Warbler", "178.Swainson_Warbler",
    "179.Tennessee_Warbler", "180.Wilson_Warbler", "181.Worm_eating_Warbler",
    "182.Yellow_Warbler", "183.Northern_Waterthrush",
    "184.Louisiana_Waterthrush", "185.Bohemian_Waxwing", "186.Cedar_Waxwing",
    "187.American_Three_toed_Woodpecker", "188.Pileated_Woodpecker",
    "189.Red_bellied_Woodpecker", "190.Red_cockaded_Woodpecker",
    "191.Red_headed_Woodpecker", "192.Downy_Woodpecker", "193.Bewick_Wren",
    "194.Cactus_Wren", "195.Carolina_Wren", "196.House_Wren", "197.Marsh_Wren",
    "198.Rock_Wren", "199.Winter_Wren", "200.Common_Yellowthroat",
)

_INSTRUCTIONS = f"""\
Download CUB_200_2011.tgz from https://www.vision.caltech.edu/datasets/\
cub_200_2011/ (data.caltech.edu record 65de6-vp158) and extract it in the
manual dir, giving <manual_dir>/{FOLDER}/ (pointing the manual dir at
{FOLDER}/ itself works too). Read are:
  {FOLDER}/images.txt               <image_id> <class folder>/<file>.jpg
  {FOLDER}/image_class_labels.txt   <image_id> <class_id 1..200>
  {FOLDER}/train_test_split.txt     <image_id> <1 = train, 0 = test>
  {FOLDER}/bounding_boxes.txt       <image_id> <x> <y> <width> <height>
  {FOLDER}/classes.txt              <class_id> <class folder name>
  {FOLDER}/images/001.Black_footed_Albatross/*.jpg ... (200 folders)
parts/, attributes/ and README are not needed."""

_CITATION = """\
@techreport{WahCUB_200_2011,
  title = {The Caltech-UCSD Birds-200-2011 Dataset},
  author = {Wah, C. and Branson, S. and Welinder, P. and Perona, P. and
            Belongie, S.},
  institution = {California Institute of Technology},
  number = {CNS-TR-2011-001},
  year = {2011}
}"""


class Cub2011(tfds.core.GeneratorBasedBuilder):
  """CUB-200-2011 with the official train/test split and bird boxes."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Original JPEG bytes, 200 classes, boxes."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=("Caltech-UCSD Birds-200-2011: 11,788 photos of 200 bird "
                     "species with one bounding box each."),
        features=birds_common.features(
            tfds.features.ClassLabel(names=CLASS_NAMES)),
        supervised_keys=("image", "label"),
        homepage="https://www.vision.caltech.edu/datasets/cub_200_2011/",
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual, root = birds_common.locate(dl_manager, FOLDER, (), _INSTRUCTIONS)
    _check_class_names(root)
    records = birds_common.read_records(root)
    labels = {class_id: class_id - 1 for class_id in range(1, NUM_CLASSES + 1)}
    birds_common.check_class_ids(root, records, labels)
    return {split: self._generate_examples(split_records, manual, root,
                                           labels, split)
            for split, split_records in
            birds_common.official_splits(records).items()}

  def _generate_examples(self, records, manual, root, labels, split):
    yield from birds_common.generate_examples(records, manual, root, labels,
                                              split)


def _check_class_names(root: epath.Path) -> None:
  """classes.txt must name the bundled classes: catches another CUB release."""
  for class_id, name in birds_common.read_class_names(root).items():
    if not 1 <= class_id <= NUM_CLASSES or CLASS_NAMES[class_id - 1] != name:
      raise ValueError(
          f"{root / birds_common.CLASSES_FILE}: class {class_id} {name!r} is "
          f"not a CUB-200-2011 class (expected ids 1..{NUM_CLASSES} named as "
          "in data_pipelines/cub.py CLASS_NAMES)")
